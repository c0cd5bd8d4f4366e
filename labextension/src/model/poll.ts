/**
 * How often the model's one Poll asks the server (pure).
 */

/**
 * Milliseconds between polls: the refresh interval while the page is visible, six times
 * slower (at most a minute) while it is hidden. Never faster than twice a second.
 */
export function pollInterval(refreshSeconds: number, hidden: boolean): number {
  const base = Math.max(0.5, refreshSeconds) * 1000;
  return hidden ? Math.min(60000, base * 6) : base;
}
