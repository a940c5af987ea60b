// A coarse clock for "12 s ago" texts: one timer for the whole page.

class Ticker {
  /** Now, in ms since the epoch, updated every few seconds while watched. */
  now = $state(Date.now());
}

/** The page's clock. */
export const clock = new Ticker();

let watchers = 0;
let timer: ReturnType<typeof setInterval> | null = null;

/** Keeps `clock.now` moving every `ms` while a page watches; call the answer to stop. */
export function tick(ms = 5000): () => void {
  watchers++;
  if (!timer) timer = setInterval(() => (clock.now = Date.now()), ms);
  clock.now = Date.now();
  return () => {
    watchers--;
    if (watchers === 0 && timer) {
      clearInterval(timer);
      timer = null;
    }
  };
}
