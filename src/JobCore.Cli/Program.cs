// jobctl entry point; commands are added per issue (img: issue 3, QMP client: issue 5).
Console.Error.WriteLine("jobctl: no command given");
return 64;
