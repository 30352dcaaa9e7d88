"""`mixer export` (`mixture.py`: weights.json as another library's configuration) and `mixer
export-shards` (`shards.py`: the shards' token stream as another library's dataset). A folder of
their own keeps `commands/` within its size limit; both call `mixer.export`."""
