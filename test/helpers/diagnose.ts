// The request as the plugin's refusal path sees it, for diagnostics wired through `onFailure`: the plugin's own.
export { refusedRequestOf } from '../../src/receiver/plugin.js'
