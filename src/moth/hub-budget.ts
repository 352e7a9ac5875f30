import type { Socket } from 'node:net';

/** What one address, and everyone together, may hold on the embedded hub. */
export interface HubLimits {
  /** Sessions open or opening from one address (a gateway holds one per robot it owns). */
  readonly sessionsPerAddress: number;
  /** Bytes of frames not yet complete, held for one address's sessions together. */
  readonly partialBytesPerAddress: number;
  /** Bytes of frames not yet complete, held for every session together. */
  readonly partialBytes: number;
}

export const DEFAULT_HUB_LIMITS: HubLimits = {
  sessionsPerAddress: 25_000,
  partialBytesPerAddress: 40 * 1024 * 1024,
  partialBytes: 256 * 1024 * 1024,
};

interface Holder {
  sessions: number;
  partial: number;
}

export interface BudgetStats {
  /** Connections refused because their address held its sessions already. */
  refusedSessions: number;
  /** Connections dropped for holding more of an unfinished frame than the budget left. */
  droppedPartial: number;
}

/**
 * The hub's budget: sessions per address, and the bytes of frames still arriving (a frame is held
 * whole until its last byte, so 20 connections each sending 15 MiB of a frame that never ends would
 * hold 300 MiB). A connection past either budget is dropped, as Moth drops (1006); what it held is
 * counted back at once and its buffers are freed with it.
 */
export class HubBudget {
  private readonly holders = new Map<string, Holder>();
  private partial = 0;
  readonly stats: BudgetStats = { refusedSessions: 0, droppedPartial: 0 };

  constructor(private readonly limits: HubLimits) {}

  /** Bytes of unfinished frames held right now, all sessions together. */
  get partialBytes(): number {
    return this.partial;
  }

  /**
   * Takes a new connection into the budget, or refuses it (null: drop it). Counts the bytes it
   * sends until `frameDone` says a frame ended (any frame: data, ping or pong).
   */
  admit(socket: Socket): { frameDone: () => void } | null {
    const address = socket.remoteAddress ?? '';
    const holder = this.holders.get(address) ?? { sessions: 0, partial: 0 };
    if (holder.sessions >= this.limits.sessionsPerAddress) {
      this.stats.refusedSessions++;
      return null;
    }
    holder.sessions++;
    this.holders.set(address, holder);
    let mine = 0;
    const release = () => {
      holder.partial -= mine;
      this.partial -= mine;
      mine = 0;
    };
    // Before the WebSocket's own reader: a chunk that ends a frame is counted, then given back by the
    // frame's end, rather than counted after it and held until the next frame.
    socket.prependListener('data', (chunk: Buffer) => {
      mine += chunk.length;
      holder.partial += chunk.length;
      this.partial += chunk.length;
      if (holder.partial > this.limits.partialBytesPerAddress || this.partial > this.limits.partialBytes) {
        this.stats.droppedPartial++;
        release();
        socket.destroy();
      }
    });
    socket.once('close', () => {
      release();
      if (--holder.sessions === 0) this.holders.delete(address);
    });
    return { frameDone: release };
  }
}
