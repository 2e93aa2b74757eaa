"""Morning-rush traces: the generator (``generate``), the file format (``format``), the city's
figures and ridership assumptions (``figures``) and the scene rules a trace's expected outcomes
must follow (``rules``). See README.md here."""
