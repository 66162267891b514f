// TypeScript declarations of @rtsync/client (index.js).

export type Status = 'connecting' | 'online' | 'offline';

export interface QueuedPublish {
  id: string;
  channel: string;
  data: unknown;
  event?: string;
  seq: number;
}

/** Where the offline publish queue lives; MemoryStore and IndexedDBStore implement it. */
export interface OutboxStore {
  put(item: QueuedPublish): Promise<void>;
  delete(id: string): Promise<void>;
  /** every item, oldest first */
  getAll(): Promise<QueuedPublish[]>;
}

export class MemoryStore implements OutboxStore {
  put(item: QueuedPublish): Promise<void>;
  delete(id: string): Promise<void>;
  getAll(): Promise<QueuedPublish[]>;
}

export class IndexedDBStore implements OutboxStore {
  constructor(name?: string);
  put(item: QueuedPublish): Promise<void>;
  delete(id: string): Promise<void>;
  getAll(): Promise<QueuedPublish[]>;
}

export interface Message {
  type: 'message';
  channel: string;
  offset?: number;
  event: string;
  data: unknown;
  from: string;
  id?: string;
  ts: number;
}
export interface Ack { type: 'ack'; channel: string; id?: string; offset?: number }
export interface StateEvent { type: 'state'; channel: string; user: string; conn: string; state: Record<string, unknown> }
export interface MemberEvent { type: 'join' | 'leave'; channel: string; user: string; conn: string }
export interface SignalEvent { type: 'signal'; channel: string; from: string; from_conn: string; data: unknown }
export interface ErrorFrame { type: 'error'; code: string; message: string; ref?: string; channel?: string }
export interface Welcome { type: 'welcome'; conn: string; user: string; edge: string }

type Unsubscribe = () => void;

declare class Emitter<E extends Record<string, (...a: any[]) => void>> {
  on<K extends keyof E>(name: K, fn: E[K]): Unsubscribe;
  off<K extends keyof E>(name: K, fn: E[K]): void;
}

export interface SubscriptionEvents {
  message: (m: Message) => void;
  state: (s: StateEvent) => void;
  join: (e: MemberEvent) => void;
  leave: (e: MemberEvent) => void;
  members: (members: Map<string, Set<string>>) => void;
  signal: (s: SignalEvent) => void;
  subscribed: (f: { type: 'subscribed'; channel: string; offset: number }) => void;
  error: (e: ErrorFrame) => void;
  [k: string]: (...a: any[]) => void;
}

export class Subscription extends Emitter<SubscriptionEvents> {
  readonly channel: string;
  /** the last offset delivered to the app (resubscriptions ask for what follows it) */
  lastOffset: number | null;
  latest: number | null;
  active: boolean;
  /** user → conn ids, with {presence: true} */
  members: Map<string, Set<string>>;
  /** conn → latest state */
  states: Map<string, { user: string; state: Record<string, unknown> }>;
  publish(data: unknown, opts?: PublishOptions): Promise<Ack>;
  setState(state: Record<string, unknown>): boolean;
  signal(toConn: string, data: unknown): boolean;
  unsubscribe(): void;
}

export interface PublishOptions {
  event?: string;
  /** idempotency key (default: a random UUID) */
  id?: string;
  ephemeral?: boolean;
}

export interface ClientOptions {
  /** edge URLs: ws(s)://host:port/ws, or an http(s) origin */
  urls?: string[];
  url?: string;
  /** WebSocket constructor (default globalThis.WebSocket; npm `ws` in Node) */
  WebSocket?: any;
  token?: string;
  /** returns a fresh JWT: at start, before `exp` (refreshMargin), after close 4001 */
  getToken?: () => string | Promise<string>;
  /** user name in open (development) mode */
  user?: string;
  store?: OutboxStore;
  storeName?: string;
  backoff?: { base?: number; max?: number };
  pingInterval?: number;
  refreshMargin?: number;
  startIndex?: number;
  random?: () => number;
}

export interface ClientEvents {
  status: (s: Status) => void;
  welcome: (w: Welcome) => void;
  error: (e: ErrorFrame | { code: string; message: string }) => void;
  ack: (a: Ack) => void;
  signal: (s: SignalEvent) => void;
  [k: string]: (...a: any[]) => void;
}

export class RtClient extends Emitter<ClientEvents> {
  constructor(opts: ClientOptions);
  readonly status: Status;
  readonly welcome: Welcome | null;
  readonly conn: string | null;
  readonly httpUrl: string;
  connect(): this;
  close(): void;
  subscribe(channel: string, opts?: { presence?: boolean; since?: number }): Subscription;
  publish(channel: string, data: unknown, opts?: PublishOptions): Promise<Ack | boolean>;
  queued(): Promise<QueuedPublish[]>;
  setState(channel: string, state: Record<string, unknown>): boolean;
  signal(channel: string, to: string, data: unknown): boolean;
  history(channel: string, opts?: { before?: number; after?: number; limit?: number }): Promise<Message[]>;
  presence(channel: string): Promise<Array<{ user: string; conn: string; edge: string; state?: unknown; since: number }>>;
}

export function connect(opts: ClientOptions): RtClient;
export function backoffDelay(attempt: number, base?: number, max?: number, random?: () => number): number;
export function tokenExpiry(token: string): number | null;
