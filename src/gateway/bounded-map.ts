/** Sets `key` in `map`, first evicting its oldest entry when it already holds `max`. */
export function setBounded<V>(map: Map<string, V>, max: number, key: string, value: V): void {
  if (map.size >= max) map.delete(map.keys().next().value!);
  map.set(key, value);
}
