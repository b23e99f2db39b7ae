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

/** The keys of one bucket, kept sorted: insert and delete cost a binary search and one move, listing costs nothing. */
export class SortedKeys implements KeyView {
  readonly #keys: string[] = []

  get size (): number { return this.#keys.length }

  at (index: number): string { return this.#keys[index] as string }

  seek (key: string, inclusive: boolean): number {
    let lo = 0
    let hi = this.#keys.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      const c = compareKeys(this.#keys[mid] as string, key)
      if (c < 0 || (c === 0 && !inclusive)) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  skipPrefix (from: number, prefix: string): number {
    let lo = from
    let hi = this.#keys.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((this.#keys[mid] as string).startsWith(prefix)) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  add (key: string): void {
    // Keys often arrive in order (a bulk upload): appending skips the search.
    const last = this.#keys.at(-1)
    if (last === undefined || compareKeys(last, key) < 0) {
      this.#keys.push(key)
      return
    }
    const i = this.seek(key, true)
    if (this.#keys[i] !== key) this.#keys.splice(i, 0, key)
  }

  remove (key: string): void {
    const i = this.seek(key, true)
    if (this.#keys[i] === key) this.#keys.splice(i, 1)
  }
}
