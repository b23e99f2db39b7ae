import { wholeNumberOption } from '../options.js'

/** Default largest callback body, in bytes: the Fastify plugin's default. */
export const DEFAULT_BODY_LIMIT_BYTES = 64 * 1024
/** Default time from a callback's arrival to its verification's end, in ms; OSS gives up at 5000. */
export const DEFAULT_DEADLINE_MS = 4500

export function bodyLimitOption (value: unknown): number {
  return wholeNumberOption('bodyLimitBytes', value, DEFAULT_BODY_LIMIT_BYTES, { max: 64 * 1024 * 1024 })
}
