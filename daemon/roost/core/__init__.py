"""The vocabulary every layer speaks (the home, events, commands, ids, time) and the bus."""
