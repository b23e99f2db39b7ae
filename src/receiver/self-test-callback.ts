/**
 * A real callback signed by OSS with the production key, as printed in the
 * official Callback API documentation (path `/index.php`). The start-up
 * self-test verifies it, so a receiver knows its crypto works before it serves.
 */
export const OSS_DOC_CALLBACK = Object.freeze({
  url: '/index.php?id=1&index=2',
  headers: Object.freeze({
    authorization: 'kKQeGTRccDKyHB3H9vF+xYMSrmhMZjzzl2/kdD1ktNVgbWEfYTQG0G2SU/RaHBovRCE8OkQDjC3uG33esH2txA==',
    'x-oss-pub-key-url': 'aHR0cDovL2dvc3NwdWJsaWMuYWxpY2RuLmNvbS9jYWxsYmFja19wdWJfa2V5X3YxLnBlbQ==',
    'content-type': 'application/x-www-form-urlencoded'
  }),
  body: 'bucket=yonghu-test'
})
