import { createHash, randomBytes } from 'node:crypto'
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { imageInfoOf, type ImageInfo } from './image-info.js'

/** One stored object, with the values OSS reports for it. */
export interface StoredObject {
  bucket: string
  key: string
  data: Buffer
  contentType: string
  /** Upper-case hex, no quotes; `<hex>-<parts>` for a multipart object. */
  etag: string
  /** CRC-64/XZ, unsigned decimal. */
  crc64: string
  /** Base64 MD5 of the data; absent for multipart objects, as OSS reports none. */
  contentMd5?: string
  lastModified: Date
  /** `x-oss-meta-*` headers, lower case names. */
  meta: Record<string, string>
  objectType: 'Normal' | 'Multipart'
}

/** What a callback reports of an object (its system variables), without its bytes. */
export interface ObjectFacts {
  bucket: string
  key: string
  etag: string
  size: number
  contentType: string
  crc64: string
  contentMd5?: string
  image?: ImageInfo
}

/** The callback facts of a stored object. */
export function factsOf (o: StoredObject): ObjectFacts {
  const image = imageInfoOf(o.data)
  return {
    bucket: o.bucket,
    key: o.key,
    etag: o.etag,
    size: o.data.length,
    contentType: o.contentType,
    crc64: o.crc64,
    ...(o.contentMd5 === undefined ? {} : { contentMd5: o.contentMd5 }),
    ...(image === undefined ? {} : { image })
  }
}

/** Where the simulator keeps objects: in memory, or on disk with `--data-dir`. */
export interface ObjectStore {
  put (object: StoredObject): Promise<void>
  get (bucket: string, key: string): Promise<StoredObject | undefined>
  delete (bucket: string, key: string): Promise<void>
}

/** Objects in a Map: gone when the process ends. */
export class MemoryStore implements ObjectStore {
  readonly #objects = new Map<string, StoredObject>()

  async put (object: StoredObject): Promise<void> {
    this.#objects.set(`${object.bucket}/${object.key}`, object)
  }

  async get (bucket: string, key: string): Promise<StoredObject | undefined> {
    return this.#objects.get(`${bucket}/${key}`)
  }

  async delete (bucket: string, key: string): Promise<void> {
    this.#objects.delete(`${bucket}/${key}`)
  }
}

interface DiskMeta extends Omit<StoredObject, 'data' | 'lastModified'> {
  lastModified: string
}

/**
 * Objects on disk under `<dir>/objects/<bucket>/`. A key can be any UTF-8 text up
 * to 1023 bytes, so files are named by the SHA-256 of the key (never by the key:
 * no path traversal, no name length limit); the key itself is in the metadata file.
 */
export class DiskStore implements ObjectStore {
  readonly #dir: string

  constructor (dir: string) {
    this.#dir = dir
  }

  #paths (bucket: string, key: string): { dir: string, data: string, meta: string } {
    const dir = join(this.#dir, 'objects', bucket)
    const name = createHash('sha256').update(key, 'utf8').digest('hex')
    return { dir, data: join(dir, `${name}.bin`), meta: join(dir, `${name}.json`) }
  }

  async put (object: StoredObject): Promise<void> {
    const p = this.#paths(object.bucket, object.key)
    await mkdir(p.dir, { recursive: true })
    const { data, lastModified, ...rest } = object
    const meta: DiskMeta = { ...rest, lastModified: lastModified.toISOString() }
    // Write then rename, so that a reader never sees half an object; a unique temporary name per
    // write, so that two uploads of one key never interleave in one file.
    const tmp = `.${randomBytes(8).toString('hex')}.tmp`
    await writeFile(`${p.data}${tmp}`, data)
    await writeFile(`${p.meta}${tmp}`, JSON.stringify(meta))
    await rename(`${p.data}${tmp}`, p.data)
    await rename(`${p.meta}${tmp}`, p.meta)
  }

  async get (bucket: string, key: string): Promise<StoredObject | undefined> {
    const p = this.#paths(bucket, key)
    let meta: DiskMeta
    try {
      meta = JSON.parse(await readFile(p.meta, 'utf8')) as DiskMeta
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw err
    }
    const data = await readFile(p.data)
    return { ...meta, data, lastModified: new Date(meta.lastModified) }
  }

  async delete (bucket: string, key: string): Promise<void> {
    const p = this.#paths(bucket, key)
    await rm(p.meta, { force: true })
    await rm(p.data, { force: true })
  }
}
