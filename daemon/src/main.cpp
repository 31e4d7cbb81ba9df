// pgcohered entry point (placeholder until the skeleton lands).
int main() { return 0; }
