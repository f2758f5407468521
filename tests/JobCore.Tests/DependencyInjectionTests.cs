using JobCore.Tests.Example;
using Microsoft.Extensions.DependencyInjection;

namespace JobCore.Tests;

[TestClass]
public sealed class DependencyInjectionTests
{
    [TestMethod]
    public async Task AddJobCore_registers_one_engine_and_is_idempotent()
    {
        var services = new ServiceCollection();
        services.AddJobCore(b => b.AddJobType<CountdownJob, CountdownOptions>("countdown"));
        services.AddJobCore(b => b.AddJobType<CountdownJob, CountdownOptions>("countdown"));
        services.AddJobCore();
        Assert.AreEqual(1, services.Count(d => d.ServiceType == typeof(JobEngine)));
        await using var provider = services.BuildServiceProvider();
        var engine = provider.GetRequiredService<JobEngine>();
        Assert.AreSame(engine, provider.GetRequiredService<JobEngine>());
        Assert.AreEqual("countdown", engine.Types.Types.Single().TypeName);
    }

    [TestMethod]
    public void Conflicting_registration_is_refused()
    {
        var services = new ServiceCollection();
        services.AddJobCore(b => b.AddJobType<CountdownJob, CountdownOptions>("countdown"));
        var e = Assert.ThrowsExactly<InvalidOperationException>(() =>
            services.AddJobCore(b => b.AddJobType<CountdownJob, CountdownOptions>("other-name")));
        StringAssert.Contains(e.Message, "countdown");
    }

    [TestMethod]
    public async Task Engine_options_are_validated_when_the_engine_starts()
    {
        var services = new ServiceCollection();
        services.AddJobCore(configureEngine: o => o.EventBufferCapacity = 0);
        await using var provider = services.BuildServiceProvider();
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => provider.GetRequiredService<JobEngine>());
        Assert.AreEqual("EventBufferCapacity", e.ParamName);
    }

    [TestMethod]
    public async Task Plugins_load_from_a_folder_and_the_example_job_runs_to_completion()
    {
        var dir = Directory.CreateTempSubdirectory("jobcore-plugins-");
        try
        {
            File.Copy(typeof(CountdownPlugin).Assembly.Location, Path.Combine(dir.FullName, "Countdown.Plugin.dll"));
            var services = new ServiceCollection();
            services.AddJobCore(b => b.AddPluginsFromDirectory(dir.FullName).AddPluginsFromDirectory(dir.FullName));
            await using var provider = services.BuildServiceProvider();
            var engine = provider.GetRequiredService<JobEngine>();
            Assert.AreEqual("countdown", engine.Types.Types.Single().TypeName);

            using var events = engine.Subscribe();
            var job = engine.Create(new CountdownOptions { Id = "cd", Steps = 3, StepTime = TimeSpan.FromMilliseconds(1), AutoDismiss = false });
            job.Start();
            await job.Concluded.WaitAsync(TimeSpan.FromSeconds(20));
            var info = job.Info;
            Assert.AreEqual(JobStatus.Concluded, info.Status);
            Assert.AreEqual(3, info.CurrentProgress);
            Assert.AreEqual(3, info.TotalProgress);
            Assert.IsNull(info.Error);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [TestMethod]
    public void Missing_plugin_folder_and_bad_options_give_clear_errors()
    {
        var services = new ServiceCollection();
        var missing = Path.Combine(Path.GetTempPath(), "no-such-jobcore-dir-" + Guid.NewGuid());
        var e = Assert.ThrowsExactly<DirectoryNotFoundException>(() => services.AddJobCore(b => b.AddPluginsFromDirectory(missing)));
        StringAssert.Contains(e.Message, missing);

        var registry = new JobTypeRegistry().Add<CountdownJob, CountdownOptions>("countdown", (_, _) => new CountdownJob());
        var engine = new JobEngine(registry);
        Assert.AreEqual("Parameter 'steps' expects a positive value",
            Assert.ThrowsExactly<JobException>(() => engine.Create(new CountdownOptions { Id = "x", Steps = 0 })).Message);
    }
}
