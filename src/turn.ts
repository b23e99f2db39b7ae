/**
 * The end of the event loop's current turn: after the turn's I/O callbacks (a `setImmediate`), so
 * that work which arrives in one turn is done together: the verifier's batch, the event log's group
 * commit. What the promise chains started by those callbacks schedule here joins the same turn's
 * end. With a plain `setImmediate` it would wait a whole turn more: the verifier's batch resolves in
 * the check phase, and an immediate queued there runs only after the next turn's I/O.
 */
const queue: Array<() => void> = []
let state: 'idle' | 'scheduled' | 'running' = 'idle'
// A callback that keeps scheduling itself cannot hold the loop: after this many rounds the rest waits a turn.
const MAX_ROUNDS = 16

export function atTurnEnd (fn: () => void): void {
  queue.push(fn)
  if (state === 'idle') {
    state = 'scheduled'
    setImmediate(run)
  }
}

// A tick queued from a microtask runs once the microtask queue is empty: every promise chain the
// callbacks started has run until it waits for I/O.
function chainsSettled (): Promise<void> {
  return Promise.resolve().then(async () => { await new Promise<void>((resolve) => { process.nextTick(resolve) }) })
}

function run (): void {
  state = 'running'
  void rounds()
}

async function rounds (): Promise<void> {
  for (let round = 0; round < MAX_ROUNDS && queue.length > 0; round++) {
    for (const fn of queue.splice(0)) {
      try {
        fn()
      } catch (err) {
        // As a throwing setImmediate callback would: uncaught, without stopping the others.
        process.nextTick(() => { throw err })
      }
    }
    await chainsSettled()
  }
  state = 'idle'
  if (queue.length > 0) {
    state = 'scheduled'
    setImmediate(run)
  }
}
