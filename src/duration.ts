import { invalidOption } from './errors.js'

const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const

/**
 * Parses one duration written `<n>s|m|h|d` (a whole number and a unit, such as `5s`,
 * `30m`, `3d`) into milliseconds. Throws `OSS_CB_ERR_INVALID_OPTION` naming `name`.
 */
export function parseDuration (text: string, name = 'duration'): number {
  const match = /^(\d{1,9})([smhd])$/.exec(text.trim())
  if (match === null) throw invalidOption(`${name} must be a whole number followed by s, m, h or d (such as 30s or 3d), got ${JSON.stringify(text)}`)
  const ms = Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS]
  if (ms <= 0 || !Number.isSafeInteger(ms)) throw invalidOption(`${name} must be greater than zero, got ${JSON.stringify(text)}`)
  return ms
}

/** Parses a comma-separated list of durations (`5s,5m,30m`) into milliseconds, in order. */
export function parseDurationList (text: string, name = 'durations'): number[] {
  const parts = text.split(',').map((p) => p.trim())
  if (parts.some((p) => p === '')) throw invalidOption(`${name} must be durations separated by commas (such as 5s,5m,30m), got ${JSON.stringify(text)}`)
  return parts.map((p) => parseDuration(p, name))
}
