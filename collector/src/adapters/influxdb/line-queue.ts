/**
 * FIFO of encoded lines with O(1) push, drop-oldest and batch take (an array with a moving head, compacted
 * now and then), for the InfluxDB writer's bounded buffer.
 */
export class LineQueue {
  private items: (string | undefined)[] = [];
  private head = 0;

  get size(): number {
    return this.items.length - this.head;
  }

  push(line: string): void {
    this.items.push(line);
  }

  /** Removes the oldest line; returns false when empty. */
  dropOldest(): boolean {
    if (this.head >= this.items.length) return false;
    this.items[this.head] = undefined;
    this.head++;
    this.compact();
    return true;
  }

  /** Removes and returns up to `n` oldest lines, oldest first. */
  take(n: number): string[] {
    const end = Math.min(this.items.length, this.head + n);
    const out = this.items.slice(this.head, end) as string[];
    for (let i = this.head; i < end; i++) this.items[i] = undefined;
    this.head = end;
    this.compact();
    return out;
  }

  /** Removes everything; returns how many lines there were. */
  clear(): number {
    const n = this.size;
    this.items = [];
    this.head = 0;
    return n;
  }

  private compact(): void {
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 4096 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}
