/**
 * CRC-64/XZ, which OSS returns as `x-oss-hash-crc64ecma`: the reflected ECMA-182
 * polynomial 0xC96C5795D7870F42, initial value and final XOR all ones.
 * Check value: "123456789" -> 11051210869376104954.
 */
const POLY = 0xC96C5795D7870F42n
const MASK = 0xFFFFFFFFFFFFFFFFn

// Split into two 32-bit halves: BigInt per byte would be far too slow for uploads.
const TABLE_LO = new Uint32Array(256)
const TABLE_HI = new Uint32Array(256)
for (let i = 0; i < 256; i++) {
  let crc = BigInt(i)
  for (let j = 0; j < 8; j++) crc = (crc & 1n) === 1n ? (crc >> 1n) ^ POLY : crc >> 1n
  TABLE_LO[i] = Number(crc & 0xFFFFFFFFn)
  TABLE_HI[i] = Number(crc >> 32n)
}

/** Continues a CRC-64/XZ over `data`; start with the default for a fresh value. Returns the unsigned value. */
export function crc64 (data: Uint8Array, previous = 0n): bigint {
  const start = previous ^ MASK
  let lo = Number(start & 0xFFFFFFFFn) >>> 0
  let hi = Number(start >> 32n) >>> 0
  for (let i = 0; i < data.length; i++) {
    const idx = (lo ^ (data[i] as number)) & 0xff
    // crc = TABLE[idx] ^ (crc >> 8), across the two halves.
    const nlo = ((lo >>> 8) | ((hi & 0xff) << 24)) >>> 0
    const nhi = hi >>> 8
    lo = (nlo ^ (TABLE_LO[idx] as number)) >>> 0
    hi = (nhi ^ (TABLE_HI[idx] as number)) >>> 0
  }
  return ((BigInt(hi) << 32n) | BigInt(lo)) ^ MASK
}
