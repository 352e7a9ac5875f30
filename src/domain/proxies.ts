import { BlockList, isIP } from 'node:net';

export const addressFamily = (ip: string) => (isIP(ip) === 6 ? 'ipv6' : 'ipv4');

/** The proxies' own addresses (`TRUST_PROXY_ADDRESSES`: addresses and CIDRs, comma-separated). */
export function parseProxyAddresses(list: string): BlockList {
  const trusted = new BlockList();
  for (const entry of list
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean)) {
    const [address, bits] = entry.split('/');
    const kind = isIP(address!);
    const prefix = bits === undefined ? (kind === 6 ? 128 : 32) : Number(bits);
    if (kind === 0 || !Number.isInteger(prefix) || prefix < 0 || prefix > (kind === 6 ? 128 : 32))
      throw new Error(`TRUST_PROXY_ADDRESSES: ${entry} is not an address or a CIDR`);
    trusted.addSubnet(address!, prefix, addressFamily(address!));
  }
  return trusted;
}
