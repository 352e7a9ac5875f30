import { BlockList, isIP } from 'node:net';

export const addressFamily = (ip: string) => (isIP(ip) === 6 ? 'ipv6' : 'ipv4');
/** Strips the brackets of an IPv6 URL host. */
export const bareHost = (host: string) => host.replace(/^\[(.*)\]$/, '$1').toLowerCase();

/**
 * A setting's comma-separated list of addresses and CIDRs (and host names, where `names` are taken):
 * the ranges as a BlockList, the names apart. An entry that is neither refuses the setting.
 */
export function parseAddressList(
  setting: string,
  list: string,
  options: { names: boolean },
): { ranges: BlockList; names: Set<string> } {
  const ranges = new BlockList();
  const names = new Set<string>();
  for (const entry of list
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean)) {
    const [address, bits] = entry.split('/');
    const ip = bareHost(address!);
    const kind = isIP(ip);
    if (kind === 0 && options.names && bits === undefined) {
      names.add(entry.toLowerCase());
      continue;
    }
    const prefix = bits === undefined ? (kind === 6 ? 128 : 32) : Number(bits);
    if (kind === 0 || !Number.isInteger(prefix) || prefix < 0 || prefix > (kind === 6 ? 128 : 32))
      throw new Error(`${setting}: ${entry} is not ${options.names ? 'a host, ' : ''}an address or a CIDR`);
    ranges.addSubnet(ip, prefix, addressFamily(ip));
  }
  return { ranges, names };
}

/** The proxies' own addresses (`TRUST_PROXY_ADDRESSES`: addresses and CIDRs, comma-separated). */
export const parseProxyAddresses = (list: string): BlockList =>
  parseAddressList('TRUST_PROXY_ADDRESSES', list, { names: false }).ranges;
