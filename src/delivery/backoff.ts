/**
 * The worker's global back-off: after `threshold` failed attempts in a row (across all events),
 * the app is taken to be down, and the background worker sends one attempt at a time after a
 * pause: `initialMs` first, then twice the last pause after each further failed probe, up to
 * `maxMs`. Failures that land while a pause runs (attempts already in flight) do not lengthen it.
 * One success, or a deliberate refusal (the app is up), restores full concurrency. So a backlog
 * built up during an outage does not stampede the app the moment it returns.
 */
export class GlobalBackoff {
  private failures = 0
  private pauseMs = 0
  private until = 0

  constructor (
    private readonly threshold: number,
    private readonly initialMs: number,
    private readonly maxMs: number,
    private readonly now: () => number
  ) {}

  /** True while the app is taken to be down. */
  get open (): boolean { return this.failures >= this.threshold }

  /** Failed attempts in a row. */
  get consecutiveFailures (): number { return this.failures }

  /** How long to wait before the next background attempt (0: go). */
  waitMs (): number { return Math.max(0, this.until - this.now()) }

  /** Feeds one attempt's outcome: `true` when the app answered (delivered or refused). */
  record (appAnswered: boolean): void {
    if (appAnswered) {
      this.failures = 0
      this.pauseMs = 0
      this.until = 0
      return
    }
    this.failures++
    if (this.failures < this.threshold || this.waitMs() > 0) return
    this.pauseMs = this.pauseMs === 0 ? this.initialMs : Math.min(this.maxMs, this.pauseMs * 2)
    this.until = this.now() + this.pauseMs
  }
}
