using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace JobCore.Qmp;

/// <summary>
/// Where a QMP server listens or a client connects: <c>unix:PATH</c> or <c>tcp:HOST:PORT</c>. QEMU's chardev
/// suffixes <c>,server=on</c>, <c>,wait=off</c>, <c>,server</c> and <c>,nowait</c> are accepted and ignored, so a
/// QEMU command line's <c>-qmp</c> value works unchanged.
/// </summary>
public sealed record QmpEndpoint
{
    private QmpEndpoint(string? path, string? host, int port)
    {
        Path = path;
        Host = host;
        Port = port;
    }

    /// <summary>The UNIX socket path, or null for TCP.</summary>
    public string? Path { get; }

    /// <summary>The TCP host (name or address), or null for a UNIX socket.</summary>
    public string? Host { get; }

    /// <summary>The TCP port (0 = any free port when listening).</summary>
    public int Port { get; }

    /// <summary>Whether this is a UNIX socket endpoint.</summary>
    public bool IsUnix => Path is not null;

    /// <summary>A UNIX socket endpoint.</summary>
    public static QmpEndpoint Unix(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return new QmpEndpoint(path, null, 0);
    }

    /// <summary>A TCP endpoint.</summary>
    public static QmpEndpoint Tcp(string host, int port)
    {
        ArgumentException.ThrowIfNullOrEmpty(host);
        ArgumentOutOfRangeException.ThrowIfNegative(port);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(port, 65535);
        return new QmpEndpoint(null, host, port);
    }

    /// <summary>Parses <c>unix:PATH[,opts]</c> or <c>tcp:[HOST]:PORT[,opts]</c>; an empty host means 127.0.0.1.</summary>
    /// <exception cref="FormatException">The text is not one of those forms, or names an option other than server/wait/nowait.</exception>
    public static QmpEndpoint Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var parts = text.Split(',');
        foreach (var option in parts.Skip(1))
        {
            if (option is not ("server" or "nowait" or "server=on" or "wait=off" or "server=yes" or "wait=no"))
            {
                throw new FormatException($"QMP endpoint '{text}': unsupported option '{option}' (only server=on and wait=off are accepted)");
            }
        }

        var main = parts[0];
        if (main.StartsWith("unix:", StringComparison.Ordinal) && main.Length > 5)
        {
            return Unix(main[5..]);
        }

        if (main.StartsWith("tcp:", StringComparison.Ordinal))
        {
            var rest = main[4..];
            var colon = rest.LastIndexOf(':');
            if (colon >= 0 && int.TryParse(rest[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port <= 65535)
            {
                var host = rest[..colon].Trim('[', ']');
                return Tcp(host.Length == 0 ? "127.0.0.1" : host, port);
            }
        }

        throw new FormatException($"QMP endpoint '{text}' is neither unix:PATH nor tcp:HOST:PORT");
    }

    /// <summary>The socket address to bind or connect to.</summary>
    public EndPoint ToEndPoint()
    {
        if (Path is not null)
        {
            return new UnixDomainSocketEndPoint(Path);
        }

        if (IPAddress.TryParse(Host, out var address))
        {
            return new IPEndPoint(address, Port);
        }

        if (Host == "localhost")
        {
            return new IPEndPoint(IPAddress.Loopback, Port);
        }

        return new DnsEndPoint(Host!, Port);
    }

    /// <summary>The canonical text form (<c>unix:PATH</c> or <c>tcp:HOST:PORT</c>).</summary>
    public override string ToString() =>
        Path is not null ? "unix:" + Path : Host!.Contains(':', StringComparison.Ordinal) ? $"tcp:[{Host}]:{Port}" : $"tcp:{Host}:{Port}";
}
