using System.Runtime.CompilerServices;

// The image tools are internal; jobctl's test project checks them directly (jobctl itself is listed in the csproj).
[assembly: InternalsVisibleTo("JobCore.Cli.Tests")]
