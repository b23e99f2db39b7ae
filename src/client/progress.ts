import cliProgress from 'cli-progress'

/** Progress of one upload. */
export interface UploadProgress {
  /** Bytes OSS has accepted so far (whole parts for multipart, bytes read into the request otherwise). */
  loadedBytes: number
  totalBytes: number
  /** Multipart uploads only. */
  partsDone?: number
  partsTotal?: number
}

/** Called as an upload advances; never called after `upload()` settles. */
export type ProgressListener = (progress: UploadProgress) => void

/** Something that reports progress and is stopped at the end. */
export interface ProgressReporter {
  update: ProgressListener
  stop: () => void
}

/** The stream a reporter writes to: stderr, or a stand-in in tests. */
export interface ProgressStream {
  write: (chunk: string) => boolean
  isTTY?: boolean
  columns?: number
}

/**
 * A progress bar (cli-progress) when `stream` is a TTY; otherwise one plain line
 * per 10 % step (and per part for multipart), so logs stay readable.
 */
export function createProgressReporter (stream: ProgressStream, label: string): ProgressReporter {
  if (stream.isTTY === true) {
    const bar = new cliProgress.SingleBar({
      stream: stream as unknown as NodeJS.WritableStream,
      format: `${label} [{bar}] {percentage}% | {value}/{total} bytes{parts}`,
      hideCursor: true,
      clearOnComplete: false
    }, cliProgress.Presets.shades_classic)
    let started = false
    return {
      update (p) {
        const parts = p.partsTotal === undefined ? '' : ` | part ${p.partsDone ?? 0}/${p.partsTotal}`
        if (!started) {
          bar.start(p.totalBytes, p.loadedBytes, { parts })
          started = true
        } else bar.update(p.loadedBytes, { parts })
      },
      stop () {
        if (started) bar.stop()
      }
    }
  }
  let lastStep = -1
  let lastParts = -1
  return {
    update (p) {
      const percent = p.totalBytes === 0 ? 100 : Math.floor((p.loadedBytes / p.totalBytes) * 100)
      const step = Math.floor(percent / 10)
      const partsChanged = p.partsDone !== undefined && p.partsDone !== lastParts
      if (step === lastStep && !partsChanged) return
      lastStep = step
      if (p.partsDone !== undefined) lastParts = p.partsDone
      const parts = p.partsTotal === undefined ? '' : `, part ${p.partsDone ?? 0}/${p.partsTotal}`
      stream.write(`${label}: ${percent}% (${p.loadedBytes}/${p.totalBytes} bytes${parts})\n`)
    },
    stop () {}
  }
}
