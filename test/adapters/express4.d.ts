// `express4` is Express 4 installed under an alias (npm:express@4) beside Express 5, for the adapter tests.
declare module 'express4' {
  import express from 'express'
  export default express
}
