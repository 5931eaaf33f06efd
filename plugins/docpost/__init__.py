"""docpost: letters from case systems to Danish Digital Post or print."""
