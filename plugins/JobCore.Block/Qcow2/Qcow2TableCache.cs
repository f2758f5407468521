namespace JobCore.Block.Nodes;

/// <summary>
/// A least-recently-used cache of one-cluster metadata tables (L2 tables or refcount blocks) keyed by host offset,
/// holding the on-disk big-endian bytes. Dirty tables are written back by the owner in dependency order; only clean
/// tables are evicted, and only when the owner calls <see cref="EvictClean"/> (never while an operation holds a
/// reference to a table).
/// </summary>
internal sealed class Qcow2TableCache
{
    private readonly Dictionary<long, LinkedListNode<Table>> _map = [];
    private readonly LinkedList<Table> _lru = new();
    private readonly List<Table> _dirty = [];

    internal Qcow2TableCache(int capacity)
    {
        Capacity = Math.Max(4, capacity);
    }

    internal int Capacity { get; }

    internal int Count => _map.Count;

    internal int DirtyCount => _dirty.Count;

    internal bool OverCapacity => _map.Count > Capacity;

    internal bool Contains(long offset) => _map.ContainsKey(offset);

    internal bool TryGet(long offset, out Table table)
    {
        if (_map.TryGetValue(offset, out var node))
        {
            if (node != _lru.First)
            {
                _lru.Remove(node);
                _lru.AddFirst(node);
            }

            table = node.Value;
            return true;
        }

        table = null!;
        return false;
    }

    internal Table Add(long offset, byte[] data, bool dirty)
    {
        var table = new Table(offset, data);
        _map[offset] = _lru.AddFirst(table);
        if (dirty)
        {
            MarkDirty(table);
        }

        return table;
    }

    internal void MarkDirty(Table table)
    {
        if (!table.Dirty)
        {
            table.Dirty = true;
            _dirty.Add(table);
        }
    }

    /// <summary>The dirty tables sorted by offset (a copy; the caller marks each clean after writing it).</summary>
    internal Table[] DirtyByOffset()
    {
        Table[] tables = [.. _dirty];
        Array.Sort(tables, static (a, b) => a.Offset.CompareTo(b.Offset));
        return tables;
    }

    internal void MarkClean(Table table)
    {
        if (table.Dirty)
        {
            table.Dirty = false;
            _dirty.Remove(table);
        }
    }

    /// <summary>Marks every table clean (after the owner wrote all of <see cref="DirtyByOffset"/>).</summary>
    internal void MarkAllClean()
    {
        foreach (var table in _dirty)
        {
            table.Dirty = false;
        }

        _dirty.Clear();
    }

    internal void Remove(long offset)
    {
        if (_map.Remove(offset, out var node))
        {
            _lru.Remove(node);
            MarkClean(node.Value);
        }
    }

    /// <summary>Drops least recently used clean tables until the cache is within capacity.</summary>
    internal void EvictClean()
    {
        var node = _lru.Last;
        while (_map.Count > Capacity && node is not null)
        {
            var previous = node.Previous;
            if (!node.Value.Dirty)
            {
                _map.Remove(node.Value.Offset);
                _lru.Remove(node);
            }

            node = previous;
        }
    }

    /// <summary>One cached table: its host offset and its bytes exactly as on disk.</summary>
    internal sealed class Table(long offset, byte[] data)
    {
        internal long Offset { get; } = offset;

        internal byte[] Data { get; } = data;

        internal bool Dirty { get; set; }
    }
}
