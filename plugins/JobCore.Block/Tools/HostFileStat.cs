using System.Runtime.InteropServices;

namespace JobCore.Block.Tools;

/// <summary>
/// What <c>statx(2)</c> says about a host file: its type, size and the bytes allocated for it on disk (qemu-img's
/// "disk size" / <c>actual-size</c>, which .NET does not expose).
/// </summary>
/// <param name="IsRegularFile">A regular file (not a device, pipe or directory).</param>
/// <param name="Size">The file length in bytes.</param>
/// <param name="AllocatedBytes">Bytes allocated on disk (<c>st_blocks × 512</c>).</param>
internal readonly partial record struct HostFileStat(bool IsRegularFile, long Size, long AllocatedBytes)
{
    private const int AtFdCwd = -100;
    private const uint StatxBasicStats = 0x7ff;
    private const int StatxBufferSize = 256;
    private const ushort FileTypeMask = 0xf000;
    private const ushort RegularFileType = 0x8000;

    /// <summary>Returns the statx data of <paramref name="path"/> (symbolic links followed).</summary>
    /// <exception cref="IOException">statx failed (the message carries the errno text).</exception>
    public static HostFileStat Of(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        // struct statx has the same layout on every Linux architecture: stx_mode at 28, stx_size at 40, stx_blocks at 48.
        Span<byte> buffer = stackalloc byte[StatxBufferSize];
        if (NativeMethods.Statx(AtFdCwd, path, 0, StatxBasicStats, ref MemoryMarshal.GetReference(buffer)) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new IOException($"Could not stat '{path}': {Marshal.GetPInvokeErrorMessage(errno)}");
        }

        var mode = MemoryMarshal.Read<ushort>(buffer[28..]);
        var size = MemoryMarshal.Read<long>(buffer[40..]);
        var blocks = MemoryMarshal.Read<long>(buffer[48..]);
        return new HostFileStat((mode & FileTypeMask) == RegularFileType, size, blocks * 512);
    }

    private static partial class NativeMethods
    {
        [LibraryImport("libc", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
        internal static partial int Statx(int dirfd, string path, int flags, uint mask, ref byte buffer);
    }
}
