"""``shoal compose``: Compose files (fig 1.0 to compose-spec) read into one typed model by a
pure loader (``loader``), and the verbs that turn a project's services into shoal containers
(``commands``)."""
