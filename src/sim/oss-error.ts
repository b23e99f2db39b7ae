/**
 * An error the simulator answers as OSS does: an HTTP status and an XML body with
 * OSS's `Code` and `Message`. These imitate OSS's own replies to uploaders; they
 * are not oss-callback's JSON errors (those live in `src/errors.ts`).
 */
export class OssHttpError extends Error {
  readonly status: number
  readonly code: string
  readonly ec: string | undefined
  readonly extra: Record<string, string> | undefined

  constructor (status: number, code: string, message: string, options: { ec?: string, extra?: Record<string, string> } = {}) {
    super(message)
    this.name = 'OssHttpError'
    this.status = status
    this.code = code
    this.ec = options.ec
    this.extra = options.extra
  }
}

/** Common OSS errors, with OSS's wording. */
export const OSS_ERRORS = {
  accessDenied: (message = 'You have no right to access this object because of bucket acl.') => new OssHttpError(403, 'AccessDenied', message),
  invalidAccessKeyId: () => new OssHttpError(403, 'InvalidAccessKeyId', 'The OSS Access Key Id you provided does not exist in our records.'),
  signatureDoesNotMatch: (extra: Record<string, string>) => new OssHttpError(403, 'SignatureDoesNotMatch',
    'The request signature we calculated does not match the signature you provided. Check your key and signing method.', { extra }),
  timeTooSkewed: () => new OssHttpError(403, 'RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.'),
  expired: () => new OssHttpError(403, 'AccessDenied', 'Request has expired.'),
  invalidArgument: (message: string, ec?: string) => new OssHttpError(400, 'InvalidArgument', message, ec === undefined ? {} : { ec }),
  noSuchKey: (key: string) => new OssHttpError(404, 'NoSuchKey', 'The specified key does not exist.', { ec: '0026-00000001', extra: { Key: key } }),
  noSuchUpload: (uploadId: string) => new OssHttpError(404, 'NoSuchUpload', 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.', { extra: { UploadId: uploadId } }),
  invalidBucketName: (bucket: string) => new OssHttpError(400, 'InvalidBucketName', 'The specified bucket is not valid.', { extra: { BucketName: bucket } }),
  invalidObjectName: () => new OssHttpError(400, 'InvalidObjectName', 'The specified object is not valid.'),
  entityTooLarge: () => new OssHttpError(400, 'EntityTooLarge', 'Your proposed upload exceeds the maximum allowed size.'),
  entityTooSmall: () => new OssHttpError(400, 'EntityTooSmall', 'Your proposed upload is smaller than the minimum allowed size.'),
  invalidRange: () => new OssHttpError(416, 'InvalidRange', 'The requested range cannot be satisfied.'),
  invalidDigest: () => new OssHttpError(400, 'InvalidDigest', 'The Content-MD5 you specified is not valid.'),
  malformedXml: () => new OssHttpError(400, 'MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema.'),
  invalidPart: () => new OssHttpError(400, 'InvalidPart', 'One or more of the specified parts could not be found or the specified entity tag might not have matched the part\'s entity tag.'),
  invalidPartOrder: () => new OssHttpError(400, 'InvalidPartOrder', 'The list of parts was not in ascending order. Parts list must be specified in order by part number.'),
  malformedPost: (message: string) => new OssHttpError(400, 'MalformedPOSTRequest', message),
  invalidPolicy: (message: string) => new OssHttpError(400, 'InvalidPolicyDocument', message),
  notImplemented: () => new OssHttpError(501, 'NotImplemented', 'The simulator does not implement this operation.')
} as const
