export { startSimulator, SIM_DEV_CREDENTIALS, type Simulator, type SimulatorOptions } from './sim/server.js'
export type { SimCredentials } from './sim/auth.js'
export { sendTestCallback, type SendTestCallbackOptions } from './sim/send.js'
export type { SendAttempt, SendRequest, SendResult } from './sim/send-endpoint.js'
