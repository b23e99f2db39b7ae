// The root entry: the framework-free verifier and nothing else. It must stay cheap to import
// (no Fastify, no ali-oss, no Redis, no node-forge until the self-test needs it): test/e2e/entry-points.test.ts.
export { errors, isOssCallbackError, type ErrorReply, type OssCallbackError, type OssCallbackErrorCode } from './errors.js'
export type { CallbackBodyType, CallbackSystemFields } from './protocol/body.js'
export type { KeyUrlPolicy } from './protocol/key-url.js'
export { KeyProvider, type FetchLike, type KeyLookup, type KeyProviderOptions, type KeyProviderStats, type KeySource } from './keys/provider.js'
export type { SignatureVerifier, VerifierName } from './receiver/signature-verifier.js'
export {
  createCallbackVerifier, verifyCallback,
  type CallbackRequest, type CallbackVerifier, type CallbackVerifierOptions, type VerifiedCallback, type VerifyOptions
} from './receiver/verify.js'
export { createDiagnostics, type DiagnosticsOptions } from './diagnose/explain.js'
