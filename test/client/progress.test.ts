import { describe, expect, it } from 'vitest'
import { createProgressReporter } from '../../src/client/progress.js'

function sink (isTTY: boolean): { stream: { write: (c: string) => boolean, isTTY: boolean, columns: number }, text: () => string } {
  let text = ''
  return { stream: { write: (c: string) => { text += c; return true }, isTTY, columns: 120 }, text: () => text }
}

describe('progress on stderr', () => {
  it('writes one plain line per 10 % step when not on a terminal', () => {
    const s = sink(false)
    const r = createProgressReporter(s.stream, 'upload')
    for (let loaded = 0; loaded <= 1000; loaded += 25) r.update({ loadedBytes: loaded, totalBytes: 1000 })
    r.stop()
    const lines = s.text().trimEnd().split('\n')
    expect(lines).toHaveLength(11)
    expect(lines[0]).toBe('upload: 0% (0/1000 bytes)')
    expect(lines[4]).toBe('upload: 40% (400/1000 bytes)')
    expect(lines[10]).toBe('upload: 100% (1000/1000 bytes)')
    expect(s.text()).not.toContain('\u001b[')
  })

  it('adds a line for every finished part of a multipart upload', () => {
    const s = sink(false)
    const r = createProgressReporter(s.stream, 'upload')
    r.update({ loadedBytes: 0, totalBytes: 300, partsDone: 0, partsTotal: 3 })
    r.update({ loadedBytes: 100, totalBytes: 300, partsDone: 1, partsTotal: 3 })
    r.update({ loadedBytes: 200, totalBytes: 300, partsDone: 2, partsTotal: 3 })
    r.update({ loadedBytes: 300, totalBytes: 300, partsDone: 3, partsTotal: 3 })
    expect(s.text()).toBe('upload: 0% (0/300 bytes, part 0/3)\nupload: 33% (100/300 bytes, part 1/3)\n' +
      'upload: 66% (200/300 bytes, part 2/3)\nupload: 100% (300/300 bytes, part 3/3)\n')
  })

  it('draws a cli-progress bar on a terminal and ends it with a new line', () => {
    const s = sink(true)
    const r = createProgressReporter(s.stream, 'upload')
    r.update({ loadedBytes: 0, totalBytes: 1000, partsDone: 0, partsTotal: 2 })
    r.update({ loadedBytes: 1000, totalBytes: 1000, partsDone: 2, partsTotal: 2 })
    r.stop()
    expect(s.text()).toContain('\u001b[')
    expect(s.text()).toContain('100% | 1000/1000 bytes | part 2/2')
    expect(s.text().endsWith('\n')).toBe(true)
  })
})
