"""SQL repositories behind the domain's ports, one module per aggregate, and the Database."""
