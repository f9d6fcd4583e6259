"""Operations: maintenance tickets, periodic reports."""
