print("pgsnap")
