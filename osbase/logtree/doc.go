// Package logtree collects all logs of a node into a single in-memory tree.
//
// Every log producer on a node (Go code through a leveled logger or log/slog,
// child processes through raw line writers) writes into a node of the tree
// addressed by a DN, a dot-separated distinguished name like
// "root.network.dhcp". The DNs mirror the supervision tree, so the logs of a
// subsystem are all the logs below its DN, and an operator can ask for exactly
// that subtree.
//
// Design:
//
//   - Each DN keeps its own bounded ring buffer of entries. A chatty subsystem
//     can only evict its own history, never that of a quiet neighbour, and
//     memory use is bounded by the number of DNs times the per-DN limit.
//   - Entries are immutable once appended and shared by pointer between the
//     buffer and all readers, so reading never copies payloads and readers
//     can hold on to entries after they have been evicted.
//   - Writers only take the lock of their own DN. The tree-wide lock is only
//     taken when DNs are created and when readers attach or detach, so readers
//     never contend with the append path. A global atomic sequence number
//     orders entries across DNs, which lets a reader merge the per-DN buffers
//     of a subtree into one chronological backlog.
//   - Streaming readers are registered on every DN they watch, under that
//     DN's lock, at the same moment its backlog is copied. Every entry is thus
//     either in the backlog or in the stream, never both and never neither.
//     Delivery to a stream never blocks: if a reader falls behind, entries are
//     dropped for that reader only and counted (see LogReader.Missed), because
//     a stuck log consumer must never stall the system it observes.
//   - The append path avoids work that is not needed: no fmt for messages
//     without formatting arguments, a single allocation per entry within the
//     tree (callers still allocate their variadic arguments), and source
//     locations resolved from a per-call-site cache.
package logtree
