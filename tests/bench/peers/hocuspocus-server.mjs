// The Hocuspocus 3.x server the yjs-e2e benchmark compares against: no
// extensions, in memory.  PORT from the environment.
import { Server } from '@hocuspocus/server'

const server = new Server({ port: Number(process.env.PORT || 1234), address: '127.0.0.1', quiet: true })
await server.listen()
console.log(`hocuspocus listening on ${process.env.PORT}`)
