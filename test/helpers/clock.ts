/** A clock that moves only when told, for stores and workers under test. */
export interface FakeClock {
  now: () => number
  advance: (ms: number) => void
  set: (ms: number) => void
}

export function fakeClock (start = Date.UTC(2026, 0, 1)): FakeClock {
  let t = start
  return {
    now: () => t,
    advance: (ms) => { t += ms },
    set: (ms) => { t = ms }
  }
}
