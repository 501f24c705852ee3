{#
    A composite key: each combination of the columns appears at most once
    (like dbt_utils.unique_combination_of_columns). Returns one row per duplicated combination.
#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

{% if combination_of_columns is string or combination_of_columns | length == 0 %}
    {{ exceptions.raise_compiler_error(
        "unique_combination_of_columns needs a list of columns, got: " ~ combination_of_columns
    ) }}
{% endif %}

{% set columns_csv = combination_of_columns | join(', ') %}

select
    {{ columns_csv }},
    count(*) as occurrences
from {{ model }}
group by {{ columns_csv }}
having count(*) > 1

{% endtest %}
