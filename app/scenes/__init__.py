"""Scene policies run after the verification core: bus, metro, scenic spot, service hall."""
