/** The simulator's default address. */
export const DEFAULT_SIM_URL = 'http://127.0.0.1:8090'
