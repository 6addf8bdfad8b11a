/** What `scan` does with a visited item. */
export type ScanVerdict = "keep" | "drop" | "stop";

/**
 * A FIFO that is scanned from the front and keeps the items it cannot serve yet in their order, in place:
 * a scan costs O(items visited), not O(queue length), and dropped items free their slots. Used for the
 * waiting devices of one site in one wave.
 */
export class DeviceQueue<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  get size(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  /**
   * Visits items from the front. `keep`: the item stays (before the unvisited ones, order kept); `drop`: it
   * leaves the queue; `stop`: the scan ends and this item and the rest stay. `visit` may push.
   */
  scan(visit: (item: T) => ScanVerdict): void {
    const items = this.items;
    const kept: T[] = [];
    let i = this.head;
    for (; i < items.length; i++) {
      const item = items[i] as T;
      const v = visit(item);
      if (v === "stop") break;
      if (v === "keep") kept.push(item);
    }
    let w = i;
    for (let k = kept.length - 1; k >= 0; k--) items[--w] = kept[k];
    for (let j = this.head; j < w; j++) items[j] = undefined;
    this.head = w;
    if (this.head >= 64 && this.head * 2 >= items.length) {
      this.items = items.slice(this.head);
      this.head = 0;
    }
  }

  /** Every item, front first (no change). */
  forEach(fn: (item: T) => void): void {
    const items = this.items;
    for (let i = this.head; i < items.length; i++) fn(items[i] as T);
  }
}
