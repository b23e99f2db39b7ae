/**
 * Compares two keys in UTF-8 byte order, the order OSS lists keys in. That is code point order,
 * which differs from JavaScript's `<` (UTF-16 code units) only when a surrogate pair meets a
 * character from U+E000 to U+FFFF.
 */
export function compareKeys (a: string, b: string): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(i)
    if (x === y) continue
    const xs = x >= 0xd800 && x <= 0xdfff
    const ys = y >= 0xd800 && y <= 0xdfff
    if (xs === ys) return x - y
    return xs ? 1 : -1
  }
  return a.length - b.length
}

/** A read-only view of a bucket's keys in byte order. */
export interface KeyView {
  readonly size: number
  at: (index: number) => string
  /** The index of the first key greater than `key` (or at least `key` when `inclusive`). */
  seek: (key: string, inclusive: boolean) => number
  /** The index of the first key from `from` on that does not start with `prefix` (keys with a prefix are contiguous). */
  skipPrefix: (from: number, prefix: string) => number
}

/**
 * The keys of one bucket in byte order. Keys that arrive in order are appended; others wait in a batch
 * that is sorted and merged in once, at the next read: a listing never sorts the whole bucket, and a
 * bulk upload in random order costs one sort of its batch rather than a move per key.
 */
export class SortedKeys implements KeyView {
  #keys: string[] = []
  #pending: string[] = []
  readonly #all = new Set<string>()

  get size (): number { return this.#all.size }

  at (index: number): string { return this.#sorted()[index] as string }

  seek (key: string, inclusive: boolean): number {
    const keys = this.#sorted()
    let lo = 0
    let hi = keys.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      const c = compareKeys(keys[mid] as string, key)
      if (c < 0 || (c === 0 && !inclusive)) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  skipPrefix (from: number, prefix: string): number {
    const keys = this.#sorted()
    let lo = from
    let hi = keys.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((keys[mid] as string).startsWith(prefix)) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  add (key: string): void {
    if (this.#all.has(key)) return
    this.#all.add(key)
    const last = this.#keys.at(-1)
    if (this.#pending.length === 0 && (last === undefined || compareKeys(last, key) < 0)) this.#keys.push(key)
    else this.#pending.push(key)
  }

  remove (key: string): void {
    if (!this.#all.delete(key)) return
    const keys = this.#sorted(key)
    const i = this.seek(key, true)
    if (keys[i] === key) keys.splice(i, 1)
  }

  /** The sorted array, with the pending batch merged in (leaving out `dropped`, being removed). */
  #sorted (dropped?: string): string[] {
    if (this.#pending.length === 0) return this.#keys
    const batch = this.#pending.filter((k) => k !== dropped).sort(compareKeys)
    this.#pending = []
    const merged: string[] = new Array<string>(this.#keys.length + batch.length)
    let i = 0
    let j = 0
    let n = 0
    while (i < this.#keys.length || j < batch.length) {
      if (j >= batch.length || (i < this.#keys.length && compareKeys(this.#keys[i] as string, batch[j] as string) < 0)) merged[n++] = this.#keys[i++] as string
      else merged[n++] = batch[j++] as string
    }
    this.#keys = merged
    return merged
  }
}
