// The one function the service uses of cluster-key-slot (the hash slot ioredis computes), which ships no types.
declare module 'cluster-key-slot' {
  /** The Redis Cluster hash slot of a key (0-16383), braces and all. */
  export default function calculateSlot(key: string): number
}
