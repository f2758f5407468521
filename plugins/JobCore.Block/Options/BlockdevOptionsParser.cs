using System.Text.Json;
using JobCore.Block.Graph;
using JobCore.Block.Nodes;

namespace JobCore.Block.Options;

/// <summary>
/// Turns QEMU <c>blockdev-add</c> JSON into <see cref="BlockdevOptions"/>, visiting members in QEMU's schema order
/// so the first error reported is the one QEMU reports.
/// </summary>
internal static class BlockdevOptionsParser
{
    private static readonly string[] ImplementedDrivers = ["blkdebug", "file", "qcow2", "raw"];

    // The other values of QAPI BlockdevDriver: accepted by QEMU's schema, not implemented by JobCore.
    private static readonly HashSet<string> OtherQemuDrivers = new(StringComparer.Ordinal)
    {
        "blklogwrites", "blkreplay", "blkverify", "bochs", "cloop", "compress", "copy-before-write",
        "copy-on-read", "dmg", "snapshot-access", "ftp", "ftps", "gluster", "host_cdrom", "host_device", "http",
        "https", "io_uring", "iscsi", "luks", "nbd", "nfs", "null-aio", "null-co", "nvme", "nvme-io_uring",
        "parallels", "preallocate", "qcow", "qed", "quorum", "rbd", "replication", "ssh", "throttle", "vdi",
        "vhdx", "virtio-blk-vfio-pci", "virtio-blk-vhost-user", "virtio-blk-vhost-vdpa", "vmdk", "vpc", "vvfat",
    };

    private static readonly string[] DiscardValues = ["ignore", "unmap"];
    private static readonly string[] DetectZeroesValues = ["off", "on", "unmap"];
    private static readonly string[] LockingValues = ["auto", "on", "off"];
    private static readonly string[] AioValues = ["threads", "native", "io_uring"];

    private static readonly Dictionary<string, BlkdebugEvent> SupportedEvents = new(StringComparer.Ordinal)
    {
        ["read_aio"] = BlkdebugEvent.ReadAio,
        ["write_aio"] = BlkdebugEvent.WriteAio,
        ["flush_to_disk"] = BlkdebugEvent.FlushToDisk,
    };

    /// <summary>The QAPI name of an event JobCore implements.</summary>
    internal static string EventName(BlkdebugEvent value) => SupportedEvents.First(e => e.Value == value).Key;

    /// <summary>The QAPI name of an I/O type.</summary>
    internal static string IOTypeName(BlkdebugIOType value) => IOTypes.First(t => t.Value == value).Key;

    // Every value of QAPI BlkdebugEvent (QEMU 7.2).
    private static readonly string[] QemuEvents =
    [
        "l1_update", "l1_grow_alloc_table", "l1_grow_write_table", "l1_grow_activate_table", "l2_load",
        "l2_update", "l2_update_compressed", "l2_alloc_cow_read", "l2_alloc_write", "read_aio",
        "read_backing_aio", "read_compressed", "write_aio", "write_compressed", "vmstate_load", "vmstate_save",
        "cow_read", "cow_write", "reftable_load", "reftable_grow", "reftable_update", "refblock_load",
        "refblock_update", "refblock_update_part", "refblock_alloc", "refblock_alloc_hookup",
        "refblock_alloc_write", "refblock_alloc_write_blocks", "refblock_alloc_write_table",
        "refblock_alloc_switch_table", "cluster_alloc", "cluster_alloc_bytes", "cluster_free", "flush_to_os",
        "flush_to_disk", "pwritev_rmw_head", "pwritev_rmw_after_head", "pwritev_rmw_tail",
        "pwritev_rmw_after_tail", "pwritev", "pwritev_zero", "pwritev_done", "empty_image_prepare",
        "l1_shrink_write_table", "l1_shrink_free_l2_clusters", "cor_write", "cluster_alloc_space", "none",
    ];

    private static readonly Dictionary<string, BlkdebugIOType> IOTypes = new(StringComparer.Ordinal)
    {
        ["read"] = BlkdebugIOType.Read,
        ["write"] = BlkdebugIOType.Write,
        ["write-zeroes"] = BlkdebugIOType.WriteZeroes,
        ["discard"] = BlkdebugIOType.Discard,
        ["flush"] = BlkdebugIOType.Flush,
        ["block-status"] = BlkdebugIOType.BlockStatus,
    };

    // blkdebug options of QEMU's schema that JobCore refuses rather than silently ignores.
    private static readonly string[] UnsupportedBlkdebugOptions =
    [
        "config", "align", "max-transfer", "opt-write-zero", "max-write-zero", "opt-discard", "max-discard",
        "set-state", "take-child-perms", "unshare-child-perms",
    ];

    /// <summary>Parses a <c>BlockdevOptions</c> object named <paramref name="fullName"/> ("" at the root).</summary>
    public static BlockdevOptions Parse(JsonElement json, string fullName, bool inheritedReadOnly = false)
    {
        var reader = QapiObjectReader.Start(json, fullName);
        string driver = ReadDriver(reader);
        string? nodeName = reader.OptionalString("node-name");
        string? discard = reader.OptionalEnum("discard", DiscardValues);
        if (reader.TryTake("cache", out JsonElement cache))
        {
            var cacheReader = QapiObjectReader.Start(cache, reader.FullName("cache"));
            cacheReader.OptionalBool("direct");
            cacheReader.OptionalBool("no-flush");
            cacheReader.CheckNoUnexpected();
        }

        bool readOnly = reader.OptionalBool("read-only") ?? inheritedReadOnly;
        reader.OptionalBool("auto-read-only");
        reader.OptionalBool("force-share");
        DetectZeroes detectZeroes = reader.OptionalEnum("detect-zeroes", DetectZeroesValues) switch
        {
            "on" => DetectZeroes.On,
            "unmap" => DetectZeroes.Unmap,
            _ => DetectZeroes.Off,
        };
        if (detectZeroes == DetectZeroes.Unmap && discard != "unmap")
        {
            throw new BlockGraphException("setting detect-zeroes to unmap is not allowed without setting discard operation to unmap");
        }

        BlockdevOptions options = driver switch
        {
            "file" => ParseFile(reader),
            "raw" => new RawBlockdevOptions(ParseRef(reader, "file", readOnly)),
            "qcow2" => ParseQcow2(reader, readOnly),
            _ => ParseBlkdebug(reader, readOnly),
        };
        reader.CheckNoUnexpected();
        return options with { NodeName = nodeName, ReadOnly = readOnly, DetectZeroes = detectZeroes };
    }

    private static string ReadDriver(QapiObjectReader reader)
    {
        JsonElement value = reader.TakeRequired("driver");
        if (value.ValueKind == JsonValueKind.String && OtherQemuDrivers.Contains(value.GetString()!))
        {
            throw new BlockGraphException($"Block driver '{value.GetString()}' is not supported by JobCore " +
                $"(supported: {string.Join(", ", ImplementedDrivers)})");
        }

        return QapiObjectReader.AsEnum(value, "driver", reader.FullName("driver"), ImplementedDrivers);
    }

    private static FileBlockdevOptions ParseFile(QapiObjectReader reader)
    {
        string filename = reader.RequiredString("filename");
        reader.OptionalString("pr-manager");
        reader.OptionalEnum("locking", LockingValues);
        reader.OptionalEnum("aio", AioValues);
        return new FileBlockdevOptions(filename);
    }

    private static Qcow2BlockdevOptions ParseQcow2(QapiObjectReader reader, bool readOnly)
    {
        BlockdevRef file = ParseRef(reader, "file", readOnly);
        if (!reader.TryTake("backing", out JsonElement backing))
        {
            return new Qcow2BlockdevOptions(file);
        }

        return backing.ValueKind switch
        {
            JsonValueKind.Null => new Qcow2BlockdevOptions(file) { BackingMode = BackingMode.None },
            JsonValueKind.String => new Qcow2BlockdevOptions(file)
            {
                BackingMode = BackingMode.Given,
                Backing = BlockdevRef.ToNode(backing.GetString()!),
            },

            // Backing files are always opened read-only unless the definition says otherwise.
            JsonValueKind.Object => new Qcow2BlockdevOptions(file)
            {
                BackingMode = BackingMode.Given,
                Backing = BlockdevRef.Inline(Parse(backing, reader.FullName("backing"), inheritedReadOnly: true)),
            },
            _ => throw QapiObjectReader.InvalidType("backing", "BlockdevRefOrNull"),
        };
    }

    private static BlkdebugBlockdevOptions ParseBlkdebug(QapiObjectReader reader, bool readOnly)
    {
        BlockdevRef image = ParseRef(reader, "image", readOnly);
        foreach (string option in UnsupportedBlkdebugOptions)
        {
            if (reader.TryTake(option, out _))
            {
                throw new BlockGraphException(
                    $"blkdebug option '{reader.FullName(option)}' is not supported by JobCore (use 'inject-error')");
            }
        }

        var rules = new List<BlkdebugInjectErrorOptions>();
        if (reader.TryTake("inject-error", out JsonElement list))
        {
            string listName = reader.FullName("inject-error");
            if (list.ValueKind != JsonValueKind.Array)
            {
                throw QapiObjectReader.InvalidType(listName, "array");
            }

            int index = 0;
            foreach (JsonElement item in list.EnumerateArray())
            {
                rules.Add(ParseRule(item, $"{listName}[{index}]"));
                index++;
            }
        }

        return new BlkdebugBlockdevOptions(image) { InjectError = rules };
    }

    private static BlkdebugInjectErrorOptions ParseRule(JsonElement json, string fullName)
    {
        var reader = QapiObjectReader.Start(json, fullName);
        string eventName = QapiObjectReader.AsEnum(reader.TakeRequired("event"), "event", reader.FullName("event"), QemuEvents);
        long? state = reader.OptionalInt("state");
        string? ioType = reader.OptionalEnum("iotype", IOTypes.Keys);
        long? errno = reader.OptionalInt("errno");
        long? sector = reader.OptionalInt("sector");
        bool? once = reader.OptionalBool("once");
        bool? immediately = reader.OptionalBool("immediately");
        reader.CheckNoUnexpected();

        if (!SupportedEvents.TryGetValue(eventName, out BlkdebugEvent blkdebugEvent))
        {
            throw new BlockGraphException($"blkdebug event '{eventName}' is not supported by JobCore " +
                $"(supported: {string.Join(", ", SupportedEvents.Keys)})");
        }

        if (errno is < 0 or > int.MaxValue)
        {
            throw new BlockGraphException($"Parameter '{reader.FullName("errno")}' expects a non-negative errno");
        }

        if (sector is < -1 || sector > long.MaxValue / 512)
        {
            throw new BlockGraphException($"Parameter '{reader.FullName("sector")}' expects a sector number or -1");
        }

        if (state is < 0 or > int.MaxValue)
        {
            throw new BlockGraphException($"Parameter '{reader.FullName("state")}' expects a non-negative state");
        }

        return new BlkdebugInjectErrorOptions(blkdebugEvent)
        {
            Given = string.Join(',', json.EnumerateObject().Select(m => m.Name)),
            IOType = ioType is null ? null : IOTypes[ioType],
            Errno = (int)(errno ?? 5),
            Sector = sector ?? -1,
            Once = once ?? false,
            Immediately = immediately ?? false,
            State = (int)(state ?? 0),
        };
    }

    private static BlockdevRef ParseRef(QapiObjectReader reader, string name, bool readOnly)
    {
        JsonElement value = reader.TakeRequired(name);
        return value.ValueKind switch
        {
            JsonValueKind.String => BlockdevRef.ToNode(value.GetString()!),
            JsonValueKind.Object => BlockdevRef.Inline(Parse(value, reader.FullName(name), readOnly)),
            _ => throw QapiObjectReader.InvalidType(name, "BlockdevRef"),
        };
    }
}
