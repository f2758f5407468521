using JobCore.Block.Tools;

namespace JobCore.Cli.Tests.Tools;

[TestClass]
public sealed class CheckReportTests
{
    [TestMethod]
    public void Clean_report_matches_qemu_img()
    {
        var s = new CheckSummary(0, 0, 0, 1024, 16, 0, 0, 1376256, []);

        Assert.AreEqual(0, s.ExitCode);
        Assert.AreEqual(
            "No errors were found on the image.\n16/1024 = 1.56% allocated, 0.00% fragmented, 0.00% compressed clusters\nImage end offset: 1376256\n",
            s.Report);
    }

    [TestMethod]
    public void Errors_and_leaks_are_both_reported_and_errors_decide_the_exit_code()
    {
        var s = new CheckSummary(1, 1, 0, 1024, 16, 0, 0, 1376256, []);

        Assert.AreEqual(2, s.ExitCode);
        Assert.AreEqual(
            "\n1 errors were found on the image.\nData may be corrupted, or further writes to the image may corrupt it.\n"
            + "\n1 leaked clusters were found on the image.\nThis means waste of disk space, but no harm to data.\n"
            + "16/1024 = 1.56% allocated, 0.00% fragmented, 0.00% compressed clusters\nImage end offset: 1376256\n",
            s.Report);
    }

    [TestMethod]
    [DataRow(0, 0, 0, 0)]
    [DataRow(0, 5, 0, 3)]
    [DataRow(2, 5, 0, 2)]
    [DataRow(2, 5, 1, 1)]
    public void Exit_codes_follow_qemu_img(int corruptions, int leaks, int checkErrors, int exitCode) =>
        Assert.AreEqual(exitCode, new CheckSummary(corruptions, leaks, checkErrors, 1, 1, 0, 0, 0, []).ExitCode);

    [TestMethod]
    public void An_empty_image_prints_no_statistics_line()
    {
        var s = new CheckSummary(0, 0, 0, 16, 0, 0, 0, 196608, []);

        Assert.AreEqual("No errors were found on the image.\nImage end offset: 196608\n", s.Report);
    }
}
