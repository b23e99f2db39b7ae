import { invalidOption } from './errors.js'

export interface WholeNumberRange {
  /** Smallest accepted value; 1 unless given. */
  min?: number
  /** Largest accepted value; unbounded (MAX_SAFE_INTEGER) unless given. */
  max?: number
}

/**
 * The one check of a whole-number option, run once at start-up: `undefined` takes the fallback, anything else
 * must be a safe integer in range, or it throws `OSS_CB_ERR_INVALID_OPTION` with a one-line message.
 */
export function wholeNumberOption (name: string, value: unknown, fallback: number, { min = 1, max = Number.MAX_SAFE_INTEGER }: WholeNumberRange = {}): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw invalidOption(`${name} must be ${describeRange(min, max)}, got ${String(value)}`)
  }
  return value
}

function describeRange (min: number, max: number): string {
  if (max !== Number.MAX_SAFE_INTEGER) return `a whole number from ${min} to ${max}`
  return min === 1 ? 'a positive whole number' : `a whole number >= ${min}`
}
