"""Reader simulators and the offline reader."""
