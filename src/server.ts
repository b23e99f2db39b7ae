export { buildApp, defaultHandler, SERVER_TIMEOUTS, type AppDependencies, type ServerTimeouts } from './server/app.js'
export { loadConfig, type ServerConfig, type TicketConfig } from './server/config.js'
export {
  createForwarder, forwardEnvelope, FORWARD_EVENT_TYPE, FORWARD_OUTCOMES,
  type ForwardEnvelope, type Forwarder, type ForwarderOptions, type ForwardOutcome
} from './server/forward.js'
export { createServerMetrics, METRIC_NAMES, type ServerMetrics, type ServerMetricsOptions } from './server/metrics.js'
