/** A clock that moves only when told, for stores and workers under test. */
export interface FakeClock {
  now: () => number
  /** Resolves once the clock is advanced `ms` past the call, or when `signal` aborts. */
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>
  /** Moves the clock, ending the sleeps that are due. */
  advance: (ms: number) => void
  /** Resolves with the length of the next sleep begun (or one begun and not yet seen). */
  nextSleep: () => Promise<number>
}

interface Sleeper { at: number, ms: number, seen: boolean, resolve: () => void }

export function fakeClock (start = Date.UTC(2026, 0, 1)): FakeClock {
  let t = start
  let sleepers: Sleeper[] = []
  let watcher: ((ms: number) => void) | undefined
  const take = (): number | undefined => {
    const s = sleepers.find((x) => !x.seen)
    if (s === undefined) return undefined
    s.seen = true
    return s.ms
  }
  return {
    now: () => t,
    sleep: (ms, signal) => new Promise<void>((resolve) => {
      if (signal?.aborted === true) { resolve(); return }
      const sleeper: Sleeper = { at: t + ms, ms, seen: false, resolve }
      sleepers.push(sleeper)
      signal?.addEventListener('abort', () => { sleepers = sleepers.filter((x) => x !== sleeper); resolve() }, { once: true })
      if (watcher !== undefined) {
        const w = watcher
        watcher = undefined
        sleeper.seen = true
        w(ms)
      }
    }),
    advance: (ms) => {
      t += ms
      const due = sleepers.filter((s) => s.at <= t)
      sleepers = sleepers.filter((s) => s.at > t)
      for (const s of due) s.resolve()
    },
    nextSleep: () => new Promise<number>((resolve) => {
      const ms = take()
      if (ms !== undefined) resolve(ms)
      else watcher = resolve
    })
  }
}
