namespace JobCore.Qmp.Tests.Server;

[TestClass]
public sealed class QmpEndpointTests
{
    [TestMethod]
    [DataRow("unix:/tmp/x.sock", "unix:/tmp/x.sock")]
    [DataRow("unix:/tmp/x.sock,server=on,wait=off", "unix:/tmp/x.sock")]
    [DataRow("unix:/tmp/x.sock,server,nowait", "unix:/tmp/x.sock")]
    [DataRow("tcp:127.0.0.1:4444", "tcp:127.0.0.1:4444")]
    [DataRow("tcp::4444", "tcp:127.0.0.1:4444")]
    [DataRow("tcp:localhost:4444,server=on,wait=off", "tcp:localhost:4444")]
    [DataRow("tcp:[::1]:4444", "tcp:[::1]:4444")]
    [DataRow("tcp:0.0.0.0:0", "tcp:0.0.0.0:0")]
    public void Parses_QEMUs_forms(string text, string canonical) => Assert.AreEqual(canonical, QmpEndpoint.Parse(text).ToString());

    [TestMethod]
    [DataRow("")]
    [DataRow("unix:")]
    [DataRow("tcp:host")]
    [DataRow("tcp:host:99999")]
    [DataRow("udp:1.2.3.4:5")]
    [DataRow("unix:/x,telnet=on")]
    public void Refuses_anything_else(string text) => Assert.ThrowsExactly<FormatException>(() => QmpEndpoint.Parse(text));
}
