import { invalidOption } from '../errors.js'

/** Default largest callback body, in bytes: the Fastify plugin's default. */
export const DEFAULT_BODY_LIMIT_BYTES = 64 * 1024
/** Default time from a callback's arrival to its verification's end, in ms; OSS gives up at 5000. */
export const DEFAULT_DEADLINE_MS = 4500

/** Checks a whole-number option once, at start-up, with a one-line error. */
export function wholeNumberOption (name: string, value: unknown, fallback: number, max: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0 || value > max) {
    throw invalidOption(`${name} must be a whole number from 1 to ${max}, got ${String(value)}`)
  }
  return value
}

export function bodyLimitOption (value: unknown): number {
  return wholeNumberOption('bodyLimitBytes', value, DEFAULT_BODY_LIMIT_BYTES, 64 * 1024 * 1024)
}
