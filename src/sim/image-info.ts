/** What OSS reports as `imageInfo.*` for an image. */
export interface ImageInfo {
  width: number
  height: number
  /** `png`, `jpg`, `gif`, `bmp` or `webp`. */
  format: string
}

function jpegSize (data: Buffer): ImageInfo | undefined {
  let i = 2
  while (i + 9 < data.length) {
    if (data[i] !== 0xff) return undefined
    const marker = data[i + 1] as number
    if (marker === 0xff) { i++; continue }
    const length = data.readUInt16BE(i + 2)
    // SOF0..SOF15 carry the frame size, except DHT (C4), JPG (C8) and DAC (CC).
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return { height: data.readUInt16BE(i + 5), width: data.readUInt16BE(i + 7), format: 'jpg' }
    }
    i += 2 + length
  }
  return undefined
}

function webpSize (data: Buffer): ImageInfo | undefined {
  const chunk = data.toString('latin1', 12, 16)
  if (chunk === 'VP8 ' && data.length >= 30) {
    return { width: data.readUInt16LE(26) & 0x3fff, height: data.readUInt16LE(28) & 0x3fff, format: 'webp' }
  }
  if (chunk === 'VP8L' && data.length >= 25) {
    const bits = data.readUInt32LE(21)
    return { width: (bits & 0x3fff) + 1, height: ((bits >> 14) & 0x3fff) + 1, format: 'webp' }
  }
  if (chunk === 'VP8X' && data.length >= 30) {
    return { width: data.readUIntLE(24, 3) + 1, height: data.readUIntLE(27, 3) + 1, format: 'webp' }
  }
  return undefined
}

/**
 * Reads the width, height and format of a PNG, JPEG, GIF, BMP or WebP image from
 * its header, as OSS fills `${imageInfo.*}`. Anything else is `undefined` (the
 * fields are then empty, as OSS sends them for non-images).
 */
export function imageInfoOf (data: Buffer): ImageInfo | undefined {
  if (data.length >= 24 && data.readUInt32BE(0) === 0x89504e47 && data.toString('latin1', 12, 16) === 'IHDR') {
    return { width: data.readUInt32BE(16), height: data.readUInt32BE(20), format: 'png' }
  }
  if (data.length >= 4 && data[0] === 0xff && data[1] === 0xd8 && data[2] === 0xff) return jpegSize(data)
  if (data.length >= 10 && (data.toString('latin1', 0, 6) === 'GIF87a' || data.toString('latin1', 0, 6) === 'GIF89a')) {
    return { width: data.readUInt16LE(6), height: data.readUInt16LE(8), format: 'gif' }
  }
  if (data.length >= 26 && data.toString('latin1', 0, 2) === 'BM') {
    return { width: Math.abs(data.readInt32LE(18)), height: Math.abs(data.readInt32LE(22)), format: 'bmp' }
  }
  if (data.length >= 16 && data.toString('latin1', 0, 4) === 'RIFF' && data.toString('latin1', 8, 12) === 'WEBP') return webpSize(data)
  return undefined
}
