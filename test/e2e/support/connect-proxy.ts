/**
 * An HTTP proxy that only tunnels (CONNECT), as a cluster-wide egress proxy does for https: for the tests of steps
 * that honour HTTPS_PROXY. It logs each tunnel's target; TLS runs end to end through it (it sees no plaintext).
 */
import * as http from 'http';
import * as net from 'net';
import { AddressInfo } from 'net';
import { pairSockets } from './tools';

export interface ConnectProxy {
  /** `http://127.0.0.1:PORT`, the value for HTTPS_PROXY. */
  readonly url: string;
  /** `host:port` of every CONNECT, in order. */
  readonly connects: string[];
  close(): Promise<void>;
}

export async function startConnectProxy(): Promise<ConnectProxy> {
  const connects: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = http.createServer((_req, res) => {
    res.writeHead(405, { 'Content-Type': 'text/plain' }).end('only CONNECT');
  });
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    const target = req.url ?? '';
    connects.push(target);
    const [host, port] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
    const upstream = net.connect(port, host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    pairSockets(client, upstream, sockets);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    connects,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
