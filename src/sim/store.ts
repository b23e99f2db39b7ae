import { createHash, randomBytes } from 'node:crypto'
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { imageInfoOf, type ImageInfo } from './image-info.js'
import { SortedKeys, type KeyView } from './key-index.js'

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

/** What a listing reports of an object. */
export interface ObjectSummary {
  key: string
  etag: string
  size: number
  lastModified: Date
  objectType: 'Normal' | 'Multipart'
}

/** Where the simulator keeps objects: in memory, or on disk with `--data-dir`. */
export interface ObjectStore {
  put (object: StoredObject): Promise<void>
  get (bucket: string, key: string): Promise<StoredObject | undefined>
  /** The listing facts of an object, without reading its bytes. */
  summary (bucket: string, key: string): Promise<ObjectSummary | undefined>
  delete (bucket: string, key: string): Promise<void>
  /** The bucket's keys in byte order, kept up to date by put and delete. Read it within one tick. */
  keys (bucket: string): Promise<KeyView>
}

function summaryOf (o: StoredObject): ObjectSummary {
  return { key: o.key, etag: o.etag, size: o.data.length, lastModified: o.lastModified, objectType: o.objectType }
}

/** Objects in a Map: gone when the process ends. */
export class MemoryStore implements ObjectStore {
  readonly #objects = new Map<string, StoredObject>()
  readonly #keys = new Map<string, SortedKeys>()

  #index (bucket: string): SortedKeys {
    let index = this.#keys.get(bucket)
    if (index === undefined) {
      index = new SortedKeys()
      this.#keys.set(bucket, index)
    }
    return index
  }

  async put (object: StoredObject): Promise<void> {
    this.#objects.set(`${object.bucket}/${object.key}`, object)
    this.#index(object.bucket).add(object.key)
  }

  async get (bucket: string, key: string): Promise<StoredObject | undefined> {
    return this.#objects.get(`${bucket}/${key}`)
  }

  async summary (bucket: string, key: string): Promise<ObjectSummary | undefined> {
    const o = this.#objects.get(`${bucket}/${key}`)
    return o === undefined ? undefined : summaryOf(o)
  }

  async delete (bucket: string, key: string): Promise<void> {
    this.#objects.delete(`${bucket}/${key}`)
    this.#keys.get(bucket)?.remove(key)
  }

  async keys (bucket: string): Promise<KeyView> {
    return this.#index(bucket)
  }
}

interface DiskMeta extends Omit<StoredObject, 'data' | 'lastModified'> {
  lastModified: string
  /** Bytes; absent in files written before listings existed. */
  size?: number
}

/**
 * Objects on disk under `<dir>/objects/<bucket>/`. A key can be any UTF-8 text up
 * to 1023 bytes, so files are named by the SHA-256 of the key (never by the key:
 * no path traversal, no name length limit); the key itself is in the metadata file.
 */
export class DiskStore implements ObjectStore {
  readonly #dir: string
  /** Per bucket, loaded from the metadata files on the first listing, then kept up to date. */
  readonly #indexes = new Map<string, Promise<SortedKeys>>()

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
    const meta: DiskMeta = { ...rest, lastModified: lastModified.toISOString(), size: data.length }
    // Write then rename, so that a reader never sees half an object; a unique temporary name per
    // write, so that two uploads of one key never interleave in one file.
    const tmp = `.${randomBytes(8).toString('hex')}.tmp`
    await writeFile(`${p.data}${tmp}`, data)
    await writeFile(`${p.meta}${tmp}`, JSON.stringify(meta))
    await rename(`${p.data}${tmp}`, p.data)
    await rename(`${p.meta}${tmp}`, p.meta)
    const index = this.#indexes.get(object.bucket)
    if (index !== undefined) (await index).add(object.key)
  }

  async #meta (file: string): Promise<DiskMeta | undefined> {
    try {
      return JSON.parse(await readFile(file, 'utf8')) as DiskMeta
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw err
    }
  }

  async get (bucket: string, key: string): Promise<StoredObject | undefined> {
    const p = this.#paths(bucket, key)
    const meta = await this.#meta(p.meta)
    if (meta === undefined) return undefined
    const object: StoredObject & { size?: number } = { ...meta, data: await readFile(p.data), lastModified: new Date(meta.lastModified) }
    delete object.size
    return object
  }

  async summary (bucket: string, key: string): Promise<ObjectSummary | undefined> {
    const p = this.#paths(bucket, key)
    const meta = await this.#meta(p.meta)
    if (meta === undefined) return undefined
    const size = meta.size ?? (await stat(p.data)).size
    return { key: meta.key, etag: meta.etag, size, lastModified: new Date(meta.lastModified), objectType: meta.objectType }
  }

  async delete (bucket: string, key: string): Promise<void> {
    const p = this.#paths(bucket, key)
    await rm(p.meta, { force: true })
    await rm(p.data, { force: true })
    const index = this.#indexes.get(bucket)
    if (index !== undefined) (await index).remove(key)
  }

  async keys (bucket: string): Promise<KeyView> {
    let index = this.#indexes.get(bucket)
    if (index === undefined) {
      index = this.#load(bucket)
      this.#indexes.set(bucket, index)
    }
    return await index
  }

  async #load (bucket: string): Promise<SortedKeys> {
    const index = new SortedKeys()
    const dir = join(this.#dir, 'objects', bucket)
    let names: string[]
    try {
      names = await readdir(dir)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return index
      throw err
    }
    for (const name of names) {
      if (!/^[0-9a-f]{64}\.json$/.test(name)) continue
      const meta = await this.#meta(join(dir, name))
      if (meta !== undefined) index.add(meta.key)
    }
    return index
  }
}
